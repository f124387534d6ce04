"""The Friday voice agent: a livekit-agents worker, registered for explicit
dispatch, that speaks with the persona carried in its job metadata.

Pure persona logic (prompt variables, instructions, greeting, voice choice) lives
in small modules that never import LiveKit's runtime, so it is testable alone;
`worker`, `persona_agent`, `call_job` and `greeting_audio` are the only modules
that touch a live session."""
