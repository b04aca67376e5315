def run(cfg):
    result = compute(
        cfg.alpha,
        cfg.beta,
        cfg.gamma,
    )
    total = result + 1
    value = <|cursor|>
    log(value)
    helper(
        value,
        total,
    )
    return value
