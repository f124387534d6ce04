"""PersonaService: the only component that talks to the CRM (issue 3).

Modules: numbers (phonenumbers parsing, CRM URL formats), mapping (CRM JSON →
Persona), sources/crm/persona_file (where personas come from), cache_entry,
memory_cache, redis_cache, cache (the two together), lookup (the logic: cache,
single-flight, stale, default), grpc_service (status codes), app (wiring onto
services.grpc_runtime), client (PersonaClient), config (env)."""
