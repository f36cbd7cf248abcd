"""What the timing scripts share: the verdict line against a target (the scripts run from this folder)."""


def verdict(worst: float, target: float, unit: str, each: str = "each") -> int:
    """Print whether the slowest median met the target; the exit status says the same."""
    met = worst < target
    print(f"target < {target:g} {unit} {each}: {'met' if met else 'MISSED'}")
    return 0 if met else 1


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """(median, 10th, 90th percentile) in ms of `repeat` calls of fn, after one untimed warm-up call."""
    import statistics
    import time
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[len(samples) // 10], samples[(len(samples) * 9) // 10]
