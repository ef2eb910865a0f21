"""Appends the seed row of authz_state to the generated initial migration (data the schema
itself needs: the counters every process polls)."""

import sys
from pathlib import Path

path = Path(sys.argv[1])
source = path.read_text()
marker = "    # ### end Alembic commands ###"
seed = (
    '    op.execute("INSERT INTO authz_state (id, version, revocation_version) VALUES (1, 1, 1)")\n'
)
upgrade_end = source.index(marker)
path.write_text(
    source[:upgrade_end] + marker + "\n" + seed + source[upgrade_end + len(marker) + 1 :]
)
