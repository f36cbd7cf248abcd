"""What the timing scripts share: the verdict line against a target (the scripts run from this folder)."""


def verdict(worst: float, target: float, unit: str, each: str = "each") -> int:
    """Print whether the slowest median met the target; the exit status says the same."""
    met = worst < target
    print(f"target < {target:g} {unit} {each}: {'met' if met else 'MISSED'}")
    return 0 if met else 1
