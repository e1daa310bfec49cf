"""The audit_x app stand-in: a small program that keeps docs/app-contract.md, for the rig's tests.

It is not the Rails app. It runs in the app's three roles as the program starts them (behind the
real launcher, components/app_launcher.sh): `bin/rails server` (web: /live, /ready, /health),
`bin/rails db:migrate` (the migration job) and `bundle exec <worker>` (a worker with its
heartbeat file). Every role logs JSON lines and checks its PostgreSQL and Redis logins every
100 ms with the passwords it reads from its secret files, counting what succeeded and failed.
"""
