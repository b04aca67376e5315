"""Caches for widgets."""


def frobnicate_widget_cache(registry, key):
    """Drop a widget from the registry's cache."""
    registry.cache.pop(key, None)
    return registry


def refresh_all(registry, keys):
    for key in keys:
        registry = frobnicate_widget_cache(registry, key)
    return registry
