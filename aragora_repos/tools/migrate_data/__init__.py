"""Copy an SQLite database into PostgreSQL: typed, resumable, verifiable.

``migrate_data()`` (and ``aragora-repos migrate-data``) copies every table the SQLite file
and the PostgreSQL schema share, parents before children. Values are converted by the
target column's type (:mod:`aragora_repos.tools.convert`); a value no rule converts, and a row
PostgreSQL refuses (an orphan, a duplicate key), goes to the reject file with its table,
key and reason. Rows travel by binary COPY in batches; each batch commits together with
its progress record and its rejects, so a run killed at any point resumes after the last
committed batch: nothing is copied twice and at most the batch in flight is redone.
Afterwards identity and serial sequences are moved past the largest copied key.

Single-column foreign keys between copied tables are dropped for the copy (orphans are
found per batch) and added back, validated, at the end; each drop is recorded in the
same transaction, so a killed run's keys are added back by the next run.

``verify=True`` computes, per table, the row count and an order-independent checksum of
canonicalized values on both sides and reports any difference: the source side from the
rows as they were converted and copied in this run, and for rows an earlier run copied,
from the SQLite file as it is now; the target side in PostgreSQL, over the stored rows.
"""

from aragora_repos.tools.migrate_data.copier import Options, Progress
from aragora_repos.tools.migrate_data.plan import Plan, TablePlan, fk_order, plan
from aragora_repos.tools.migrate_data.report import DataMigrationReport, TableReport
from aragora_repos.tools.migrate_data.run import migrate_data
from aragora_repos.tools.migrate_data.state import STATE_SCHEMA
from aragora_repos.tools.migrate_data.verify import source_checksum, target_checksum_sql

__all__ = [
    "STATE_SCHEMA",
    "DataMigrationReport",
    "Options",
    "Plan",
    "Progress",
    "TablePlan",
    "TableReport",
    "fk_order",
    "migrate_data",
    "plan",
    "source_checksum",
    "target_checksum_sql",
]
