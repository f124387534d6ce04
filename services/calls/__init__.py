"""CallHistoryService: every call recorded from ring to hang-up (docs/architecture.md, "Call history")."""
