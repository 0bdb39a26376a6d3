"""Render the engine's Jinja2 templates for the C++ tests.

python render.py                     descriptor.h + config.h into tests/cpp (the committed copies)
python render.py OUTDIR [key=value]  all templates into OUTDIR, hw config overrides as key=value
"""
import pathlib, sys, jinja2
here = pathlib.Path(__file__).resolve().parent
env = jinja2.Environment(loader=jinja2.FileSystemLoader(here.parent.parent / "hls_templates/engine"), keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
from codesign.hw import descriptor, interface  # the one definition of the fields and flags, and of the ports
fields = [(n.upper(), i) for i, n in enumerate(descriptor.FIELDS)]
flags = dict(descriptor.FLAGS)
from codesign.hls.project import hw_context  # what write_project renders with
from codesign.hw.config import HardwareConfig
# DiracDeltaNet's buffers on the default engine; key=value overrides any field
config = HardwareConfig(max_line=3584, max_weights=1024 * 512)
config = config.with_(**{k: int(v) for k, v in (a.split("=") for a in sys.argv[2:])})
hw = hw_context(config)
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here
out.mkdir(parents=True, exist_ok=True)
for name in ["descriptor.h", "config.h"] + (["codesign_engine.h", "top.cpp", "csim_api.cpp", "testbench.cpp"] if out != here else []):
    (out / name).write_text(env.get_template(name + ".j2").render(fields=fields, flags=flags, desc_words=descriptor.WORDS, hw=hw,
                                                                           **interface.template_context()))
