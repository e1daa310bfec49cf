"""The audit-x backup runner: PostgreSQL and InfluxDB to S3, verified by restore drills.

Runs inside the backup container on each environment's Docker host (see Dockerfile) and from
an operator's shell for restores. `python -m runner --help` lists the commands.
"""
