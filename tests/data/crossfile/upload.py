from sizes import parse_size


def check_upload(limit_text, data):
    limit = parse_size(limit_text)
    if len(data) > limit:
        raise ValueError(f"upload of {len(data)} bytes over the limit of {limit}")
    return 
