"""The CKAN Action API's datastore actions: ``datastore_search``, ``datastore_info``, ``datastore_search_sql``.

Registered with the CKAN router's registry; the work is done by ``query.py``.
"""

from __future__ import annotations

from typing import Any

from ..ckan.actions import ActionCall, action
from . import query


@action("datastore_search", read=True)
def datastore_search(call: ActionCall) -> dict[str, Any]:
    """Search a DataStore resource.

    :param resource_id: id of the resource to be searched against
    :param filters: matching conditions to select, e.g {"key1": "a", "key2": "b"} (values may be lists)
    :param q: full text query: every word must appear in one of the text fields; or {"field": "text"}
    :param distinct: return only distinct rows (default false)
    :param fields: fields to return (list or comma separated string; default all, in order)
    :param sort: comma separated field names with ordering, e.g. "fieldname1, fieldname2 desc"
    :param limit: maximum number of rows to return (default 100, at most 32000)
    :param offset: offset this number of rows
    :param include_total: true to return the total matching record count (default true)
    :param records_format: objects (default), lists, csv or tsv
    :returns: resource_id, fields, records, total, limit, _links (start, next)
    """
    path = "/api/3/action/datastore_search"
    return query.datastore_search(call.session, call.actor, call.settings, dict(call.params), path=path)


@action("datastore_info", read=True)
def datastore_info(call: ActionCall) -> dict[str, Any]:
    """Information about a DataStore resource: its fields with their types, and its row count.

    :param id: id of the resource (``resource_id`` is accepted too)
    :returns: meta (id, count, table_type, aliases) and fields (id, type, schema, info)
    """
    return query.datastore_info(call.session, call.actor, call.settings, dict(call.params))


@action("datastore_search_sql", read=True)
def datastore_search_sql(call: ActionCall) -> dict[str, Any]:
    """Run one SQL SELECT over the DataStore (when the site has turned this on).

    Tables are named by resource id, e.g. SELECT * FROM "<resource id>" WHERE ...; only the tables
    of public resources can be read. Queries have a time limit, and return at most 32000 rows
    (``records_truncated`` is true when there were more).

    :param sql: a single SQL SELECT statement
    :returns: fields, records (and records_truncated)
    """
    return query.datastore_search_sql(call.session, call.actor, call.settings, dict(call.params))
