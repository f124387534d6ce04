"""The fault matrix (`friday chaos`): simulated calls through the real gateway and
services while one thing at a time goes wrong, redelivered on LiveKit's schedule,
and counted — calls left without an agent, calls with two, calls with the wrong
persona, and how long dispatch took. The CRM and LiveKit are the stand-ins of
`services.testing`.
"""
