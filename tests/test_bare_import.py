"""neptune-scale's protobuf modules load without neptune_api's client, and leave no trace a later
`import neptune_api` could trip on (sources/bare_import.py). (That an offline fetch imports no
vendor client nor HTTP stack: tests/test_neptune_scale_speed.py.)"""
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys
    from cometx_mirror.sources.bare_import import import_bare
    from cometx_mirror.sources.neptune.scale import _proto_folder
    pb = import_bare("neptune_api", "proto.neptune_pb.ingest.v1.common_pb2", FOLDERS)
    left = sorted(m for m in sys.modules if m == "neptune_api" or m.startswith("neptune_api."))
    assert not left, left                                   # the interpreter is as it was
    assert "httpx" not in sys.modules and "jwt" not in sys.modules   # the client was not loaded
    assert ("importlib.metadata" in sys.modules) == WITH_INIT   # neptune_api.proto's `__init__` asks it
    op = pb.UpdateRunSnapshot()
    op.step.whole = 3
    op.append["loss"].float64 = 0.25
    payload = op.SerializeToString()
    import neptune_api                                      # the real package, afresh
    from neptune_api.proto.neptune_pb.ingest.v1 import common_pb2 as real
    assert real.UpdateRunSnapshot is pb.UpdateRunSnapshot   # one class per message descriptor
    back = real.UpdateRunSnapshot.FromString(payload)
    assert back.append["loss"].float64 == 0.25 and back.step.whole == 3
    print("ok")
""")


def _run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1]


def test_loaded_alone_then_neptune_api_imports_afresh():
    assert _run(PROBE.replace("FOLDERS", "None").replace("WITH_INIT", "True")) == "ok"


def test_a_subpackage_init_that_only_picks_a_folder_is_stood_in_for():
    assert _run(PROBE.replace("FOLDERS", "_proto_folder()").replace("WITH_INIT", "False")) == "ok"


def test_a_package_already_imported_is_used_as_it_is():
    probe = ("from neptune_api.proto.neptune_pb.ingest.v1 import common_pb2 as real\n"
             "from cometx_mirror.sources.bare_import import import_bare\n"
             "assert import_bare('neptune_api', 'proto.neptune_pb.ingest.v1.common_pb2') is real\nprint('ok')\n")
    assert _run(probe) == "ok"


def test_a_missing_module_raises_the_usual_import_error():
    probe = ("from cometx_mirror.sources.bare_import import import_bare\n"
             "try:\n    import_bare('neptune_api', 'proto.no_such_pb2')\nexcept ImportError:\n    print('ok')\n"
             "import sys\nassert not [m for m in sys.modules if m.startswith('neptune_api')]\n")
    assert _run(probe) == "ok"
