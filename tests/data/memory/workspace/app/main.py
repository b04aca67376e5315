import lib.helpers as h


def reset(registry, keys):
    for key in keys:
        registry = h.frob
    return registry
