"""A Comet-compatible HTTP server on loopback that the real comet_ml SDK accepts as Comet.

    from cometx_mirror.server import start_server
    srv = start_server()              # http://127.0.0.1:<free port>
    os.environ.update(srv.env())      # COMET_URL_OVERRIDE, COMET_API_KEY, COMET_WORKSPACE
    ...
    srv.counters(); srv.set_faults("503 p=0.1"); srv.stop()

See docs/server.md.
"""
from .faults import FaultSpecError
from .runner import ServerHandle, admin_get, admin_reset, admin_set_faults, start_server
from .state import DEFAULT_USERS, User

__all__ = ["start_server", "ServerHandle", "User", "DEFAULT_USERS", "FaultSpecError",
           "admin_get", "admin_set_faults", "admin_reset"]
