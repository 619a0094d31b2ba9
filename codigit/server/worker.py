"""`python -m codigit.server.worker`: an rq worker for `codigit serve --redis-url` (started by serve itself)."""

from codigit.server.jobs import run_worker

if __name__ == "__main__":
    run_worker()
