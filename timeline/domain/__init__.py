"""The domain: the query language, events and clustering, storylines, dates. Pure: no database, no Discord, no HTTP."""
