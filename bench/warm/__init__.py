"""A warm bench process: `bench` commands start in a fork of one that already imported
what they need.

A cold `bench run` spends its first seconds importing (lm-eval, datasets, SQLAlchemy in
bench's process; torch and transformers in the model's). `bench warm` starts a process
that does those imports once and then waits on a Unix socket. Each later `bench` command
(client.py, standard library only) hands it its arguments, working directory,
environment and terminal, and the warm process forks a child that runs the command as
the cold path would; a run's model process is forked from that child, with torch and
transformers already imported. Forking gives every command the state a cold start gives
it: nothing a command does survives it, so a command's results are the cold path's.

The socket's name is a key over what imports depend on (the Python, bench's source files,
the installed packages, the environment), so a stale warm process is never used: the
command then starts cold, as without one.
"""
