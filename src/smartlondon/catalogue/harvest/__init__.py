"""Harvesting: bring other portals' catalogues into this one, idempotently and on a schedule.

- ``models``: sources, jobs, job errors and harvested objects;
- ``records``: the common shape every source type reads its remote records into;
- ``transforms``: the clean-up and mapping of a remote record onto the catalogue's fields;
- ``fetch``: HTTP with timeouts, retries with backoff, and a page cap;
- ``ckan``, ``dcat``, ``datapress``, ``socrata``, ``dcat_us``: one module per source type;
- ``sources``: the registry of sources (permissions, schedules, starting jobs);
- ``runner``: runs a job, one transaction per record, and the watchdog for stalled jobs;
- ``scheduler``: the background thread that ``serve`` runs;
- ``pages``: the report pages and the JSON API; ``cli``: ``smartlondon harvest``.
"""
