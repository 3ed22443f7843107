"""GitOps safety: `bootguard commit` and `bootguard upgrade` on a host's configuration repository.

Modules, bottom to top: `git` (one small function per git command, stdlib only), `locks`,
`events`, `backups`, `probe` (the lean no-op check of `upgrade`, stdlib only), `secrets`,
`record` (the failing-commit file), `integrate` (rebase and conflict strategies), `deploy`
(build, validate, switch, trial), `commit` and `upgrade` (orchestration), `service` (the entry
points the CLI calls). Nothing is imported here so that `import bootguard.gitops.probe` stays
cheap; `bootguard status` uses `bootguard.gitops.backups.list_backups`.
"""
