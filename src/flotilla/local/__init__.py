"""`flotilla up`: the whole stack on one machine.

plan.py decides what to run (ports, commands, logs) and finds every problem before anything
starts; supervisor.py keeps each process alive (health phases, restarts with backoff, process
groups, TERM then KILL); runner.py starts the engines, then the gateway, and stops them in the
reverse order; state.py, display.py and banner.py describe the run to programs and people.
"""
