"""Reset what the writer and reader cache per process (settings, clients, the Cassandra session).

Lambda builds these once per execution environment; a tool or test that changes the environment
between calls in one process resets them here.
"""

from __future__ import annotations

from orderpipe_common import cassandra_session


def reset_function_caches() -> None:
    from orderpipe_reader import cache as reader_cache
    from orderpipe_reader import handler as reader_handler
    from orderpipe_writer import handler as writer_handler

    writer_handler.get_store.cache_clear()
    for getter in (reader_handler.get_settings, reader_handler.get_cache, reader_handler.get_source):
        getter.cache_clear()
    reader_cache._dynamodb_client.cache_clear()
    cassandra_session.reset_session()
