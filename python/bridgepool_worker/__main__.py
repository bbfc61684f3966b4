"""Entry point for `python3 -m bridgepool_worker`; all the work is in `runtime.main`.

Kept to an import and a call: code here would run as module `__main__`, a second copy of
anything defined in it, so nothing that handler modules share (the registry) may live here.
"""

from bridgepool_worker.runtime import main

if __name__ == "__main__":
    main()
