"""What the routes call: each module composes library calls and the store's repositories.

Layers, one direction: ``api.routes`` -> ``api.services`` -> ``geoalloc.store`` and the library
(through :mod:`api.library`). Services never import routes; routes never write to the database.
"""
