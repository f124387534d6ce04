"""Test doubles for the systems we do not own, in the spirit of `temporalio.testing` and
httpx's `MockTransport`: a protocol-faithful stand-in for livekit-server's Twirp API
(`livekit_api`; what its services answer in `livekit_services`, its rooms and dispatches in
`livekit_rooms`, agent workers and jobs in `agent_workers`, SIP trunks in `livekit_sip`,
ids in `livekit_ids`, Twirp wire details and auth in `twirp`, its control API in
`livekit_control`) and one for the CRM's persona API (`crm`), the webhooks LiveKit sends,
built and signed as it signs them (`livekit_webhooks`, SIP participants in
`sip_participants`), a helper to run a stand-in as its own process (`process`), and the
whole call path in one event loop (`mesh`, its knobs in `mesh_options`, its own Redis in
`redis_process`). For the voice agent: a stand-in for its job's room (`agent_job`,
in-process and recording what the agent did), scripted speech models and an audio sink
(`speech`). Each module's docstring says what it models and what it does not.

The LiveKit API and CRM stand-ins are real HTTP servers on 127.0.0.1 (port 0 by default), either inside the
caller's event loop (``async with CrmStandIn() as crm: ...``) or as a separate process
(``python -m services.testing.crm``, ``python -m services.testing.livekit_api``), so
what uses them exercises real sockets and real encodings.

Imported by the tests, `friday bench`, `friday chaos` and `friday simulate-call`. It
ships in the wheel so those tools work from an install, but the services themselves
(PersonaService, DispatcherService, the gateway, the agent) never import it.
"""
