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
hw = dict(pi=32, po=32, act_bits=4, weight_bits=8, acc_bits=32, bus_bits=128, max_channels=1024, max_width=224, max_line=3584, max_weights=1024 * 512)  # DiracDeltaNet
hw.update((k, int(v)) for k, v in (a.split("=") for a in sys.argv[2:]))
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here
out.mkdir(parents=True, exist_ok=True)
for name in ["descriptor.h", "config.h"] + (["codesign_engine.h", "top.cpp", "csim_api.cpp", "testbench.cpp"] if out != here else []):
    (out / name).write_text(env.get_template(name + ".j2").render(fields=fields, flags=flags, desc_words=descriptor.WORDS, hw=hw,
                                                                           **interface.template_context()))
