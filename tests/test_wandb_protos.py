"""wandb's protobuf modules load without the rest of wandb, and leave no trace a later
`import wandb` could trip on (sources/wandb/protos.py)."""
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys, time
    from cometx_mirror.sources.wandb.protos import wandb_internal_pb2
    pb = wandb_internal_pb2()
    left = sorted(m for m in sys.modules if m == "wandb" or m.startswith("wandb."))
    assert not left, left                                  # the interpreter is as it was
    assert "pydantic" not in sys.modules                   # the SDK was not loaded
    record = pb.Record(num=7)
    record.history.item.add(key="loss", value_json="0.5")
    payload = record.SerializeToString()
    import wandb                                           # the real package, afresh
    from wandb.proto import wandb_internal_pb2 as real
    assert real.Record is pb.Record                        # one class per message descriptor
    back = real.Record()
    back.ParseFromString(payload)
    assert back.history.item[0].value_json == "0.5" and wandb.__version__
    print("ok")
""")


def test_loaded_alone_then_wandb_imports_afresh():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "ok"


def test_wandb_already_imported_is_used_as_it_is():
    probe = ("import wandb\nfrom wandb.proto import wandb_internal_pb2 as real\n"
             "from cometx_mirror.sources.wandb.protos import wandb_internal_pb2\n"
             "assert wandb_internal_pb2() is real\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
