"""The CKAN Action API (``/api/action/<name>`` and ``/api/3/action/<name>``), as CKAN 2.10 speaks it.

``actions`` holds the registry every part registers its actions with; ``reads`` and ``writes``
are the catalogue's actions; ``router`` is the HTTP side (envelope, status codes, request bodies).
"""
