"""docs/models.md's preset table lists every preset with the count the program gives it
(the counts themselves are checked against published totals in test_zoo_presets.py). The zoo's examples
run with all other README examples in test_readme.py."""

import re
from pathlib import Path

from opgraph import models
from opgraph import Phase

README = (Path(__file__).parents[2] / "docs" / "models.md").read_text()


def test_preset_table_lists_every_preset_with_its_count():
    rows = dict(re.findall(r"^\| `([\w.-]+)` \| [^|]+ \| ([\d,]+) \|", README, flags=re.M))
    assert set(rows) == set(models.names())
    for name, count in rows.items():
        assert models.get(name).build(Phase.decode(1, 1)).params() == int(count.replace(",", ""))
