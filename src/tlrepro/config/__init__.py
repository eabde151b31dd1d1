"""The config: loading, expanding the short form, typed models, the rehearsal profile."""
