"""PersonaService: the only component that talks to the CRM.

Modules: numbers (phonenumbers parsing, CRM URL formats), mapping (CRM JSON →
Persona), sources/crm/persona_file (where personas come from), cache_entry,
memory_cache, redis_cache, cache (the two together), lookup (the logic: cache,
single-flight, stale, default), servicer (the only module that knows status
codes), server (the composition root), client (PersonaClient), config (env)."""
