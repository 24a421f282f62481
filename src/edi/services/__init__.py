"""The backbone's async services, each runnable on its own, built on the shared runtime in `runtime`."""
