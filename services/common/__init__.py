"""Small pieces every Friday component shares: the job metadata codec, the
built-in default persona, and the trace id conventions."""
