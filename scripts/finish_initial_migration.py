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

# PostgreSQL-only expression indexes (e.g. lower(name) text_pattern_ops for prefix search):
# autogenerate against SQLite cannot render them, so indexes whose `info` carries
# {"postgresql_only": True} are appended here, created only on PostgreSQL.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy.dialects import postgresql  # noqa: E402
from sqlalchemy.schema import CreateIndex  # noqa: E402

from app.models_registry import load_all_models  # noqa: E402

statements = [
    str(CreateIndex(index).compile(dialect=postgresql.dialect()))
    for table in load_all_models().metadata.sorted_tables
    for index in sorted(table.indexes, key=lambda i: str(i.name))
    if index.info.get("postgresql_only")
]
if statements:
    source = path.read_text()
    upgrade_end = source.index(marker)
    block = '    if op.get_bind().dialect.name == "postgresql":\n' + "".join(
        f"        op.execute({s!r})\n" for s in statements
    )
    path.write_text(source[:upgrade_end] + block + source[upgrade_end:])
