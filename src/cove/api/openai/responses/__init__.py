"""OpenAI's Responses API (``/v1/responses``): schemas, convert (to and from the one pipeline),
events (streaming), thin routes. Stored responses live in :mod:`cove.store.responses`."""
