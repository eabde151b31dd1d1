"""The plan both runners share: runs, jobs, file layout, code identity, cost estimate."""
