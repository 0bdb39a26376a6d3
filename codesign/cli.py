"""The `codesign` command: one sub-command per stage of the flow.

Every user-facing failure is a CodesignError (or an OS error such as a missing file) and is
printed as one line with a non-zero exit; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CodesignError

if TYPE_CHECKING:
    from .graph import Graph

EXIT_USER_ERROR = 2


def _model_config_from_args(args: argparse.Namespace) -> dict:
    """A build_model config of the options given; the model's own defaults fill in the rest."""
    def given(pairs: list[tuple[str, object]]) -> dict:
        return {k: v for k, v in pairs if v is not None}

    from .architectures import quant_overrides

    return {"model": args.model, **given([("num_classes", args.classes), ("width", args.width),
                                          ("resolution", args.resolution), ("config", args.config)]),
            "quant": quant_overrides(args)}


def cmd_summary(args: argparse.Namespace) -> None:
    if args.ir:
        from .graph import load
        from .graph.stats import format_graph_summary

        print(format_graph_summary(load(args.ir)))
        return
    from .models import build_model
    from .models.summary import count_params, format_summary, summarize

    if args.checkpoint:
        from .train.checkpoint import load_checkpoint

        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = build_model(_model_config_from_args(args), quantize=False)
    res = model.config["resolution"]
    title = (f"{model.config['model']}: {res}×{res} input, {model.config['num_classes']} classes, "
             f"width {model.config['width']}")
    print(format_summary(summarize(model, res), count_params(model), title))


DETECTORS = ("codenet",)  # models trained by codesign.detection (boxes) rather than codesign.train (classes)


def _train_model(argv: list[str]) -> str | None:
    """The model a train command line names (--model: a name, or JSON / a .json file naming one), which
    picks the trainer; None when absent or unreadable (the trainer's own parser then reports it)."""
    from .train.trainer import model_spec

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    pre.add_argument("--model")
    try:
        model = pre.parse_known_args(argv)[0].model
        return None if model is None else model_spec(model).get("model")
    except (argparse.ArgumentError, argparse.ArgumentTypeError):
        return None


class _OneLineParser(argparse.ArgumentParser):
    """A parser whose usage errors are one CodesignError line (main prints it, exit 2), not the usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise CodesignError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def train_parser(model: str | None) -> argparse.ArgumentParser:
    """`codesign train` options: the detection trainer's for CoDeNet, the classifier's otherwise."""
    from .train.trainer import add_train_arguments, model_spec

    if model in DETECTORS:
        from .detection import add_detection_train_arguments

        p = _OneLineParser(prog="codesign train --model codenet", allow_abbrev=False,
                                    description="CoDeNet: float pre-training then W4A8 QAT on a VOC-format set")
        p.add_argument("--model", type=model_spec, dest="model_spec", required=True,
                       help="codenet, or a CoDeNet model config as JSON or a .json file")
        add_detection_train_arguments(p)
        return p

    p = _OneLineParser(prog="codesign train", allow_abbrev=False, description="float pre-training then QAT; "
                                f"`--model {DETECTORS[0]} --help` lists the detector's options")
    add_train_arguments(p)
    return p


def cmd_train(args: argparse.Namespace) -> None:
    model = _train_model(args.train_args)
    train_args = train_parser(model).parse_args(args.train_args)
    if model in DETECTORS:
        from .detection import run_detection_from_args

        spec = {k: v for k, v in train_args.model_spec.items() if k != "model"}
        train_args.model_config = {**spec, **(train_args.model_config or {})}
        run_detection_from_args(train_args)
    else:
        from .train.trainer import run_from_args

        run_from_args(train_args)


def cmd_export(args: argparse.Namespace) -> None:
    from .graph import save
    from .quant import export_model
    from .train.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    if not model.config.get("quant", {}).get("quantize", True):
        raise CodesignError(f"{args.checkpoint}: is a float checkpoint; export needs the QAT checkpoint")
    graph = export_model(model, name=args.name)
    class_names = meta.get("metrics", {}).get("class_names")
    if class_names:  # labels for golden, deploy and the driver
        graph.meta["class_names"] = list(class_names)
    path = save(graph, args.output)
    print(f"wrote {path} ({len(graph.layers)} layers)")
    if args.qonnx:
        from .quant.qonnx_export import export_qonnx

        print(f"wrote {export_qonnx(model, args.qonnx, model.config['resolution'])} (QONNX)")


def cmd_import(args: argparse.Namespace) -> None:
    from .graph import save
    from .importers import import_qonnx

    graph = import_qonnx(args.model, name=args.name)
    path = save(graph, args.output)
    ops = sorted({layer.op for layer in graph.layers})
    note = graph.meta["half_even"] and f"; ties to even (engine built with half_even): {', '.join(graph.meta['half_even'])}"
    print(f"wrote {path} ({len(graph.layers)} layers: {', '.join(ops)}{note or ''})")


def _golden_float(args: argparse.Namespace, golden) -> None:
    """--npy: float NCHW input through the input quantizer, the integer model, and back to floats."""
    import numpy as np

    try:
        x = np.load(args.npy, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CodesignError(f"{args.npy}: not a NumPy .npy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(x, np.ndarray):  # np.load opens a zip (.npz, .ir) as an archive of arrays
        raise CodesignError(f"{args.npy}: not a NumPy .npy array (an archive of several arrays?)")
    from .golden.executor import GoldenInputError

    try:
        out = golden.run_float(x)
    except GoldenInputError as e:
        raise CodesignError(f"{args.npy}: {e}") from None
    if args.save:
        np.save(args.save, out)
        print(f"wrote {args.save} {out.shape} float32")
    else:
        with np.printoptions(precision=6, suppress=True, threshold=200):
            print(out)


def _load_images(args: argparse.Namespace, resolution: int):
    from .data import load_dataset

    if args.dataset:
        data = load_dataset(args.dataset, resolution, args.split, resize=args.resize)
        return data.images, data.labels, data.class_names
    from .data.classification import load_image_files

    images = load_image_files(args.images, resolution, args.resize)
    return images, None, None


def cmd_golden(args: argparse.Namespace) -> None:
    import numpy as np

    from .decode import is_detector
    from .golden import GoldenModel
    from .graph import load

    graph = load(args.ir)
    if args.npy:
        return _golden_float(args, GoldenModel(graph))
    if args.save:
        raise CodesignError("--save writes the float output of --npy; give --npy")
    if is_detector(graph):
        return _golden_detection(args, graph)
    golden = GoldenModel(graph)
    images, labels, classes = _load_images(args, golden.input_shape[0])
    top1 = golden.predict(images)
    if args.images:
        for name, p in zip(args.images, top1):
            label = (graph.meta.get("class_names") or [None] * (p + 1))[p]
            print(f"{name}: class {p}" + (f" ({label})" if label else ""))
    if labels is not None:
        print(f"golden model top-1 on {len(labels)} images: {100 * float(np.mean(top1 == labels)):.2f} %")


def _golden_detection(args: argparse.Namespace, graph: Graph) -> None:
    """A detector's IR: its boxes per image (--images) or its AP50 on a VOC split (--dataset);
    --draw writes every image with its boxes (and the ground truth, white) as PNG."""
    from .detection import draw_detections, mean_ap
    from .decode import check_detector_classes, detections_from_outputs, detector_classes
    from .golden import GoldenModel

    golden = GoldenModel(graph)
    res = golden.input_shape[0]
    names = list(graph.meta.get("class_names") or [])
    if args.dataset:
        from .data.voc import load_detection_set

        data = load_detection_set(args.dataset, args.split, res)
        check_detector_classes(graph, data.class_names, args.dataset)
        images, ids, truth, names = data.images, data.ids, data.boxes, data.class_names
    else:
        from .data.classification import load_image_files

        images, ids, truth = load_image_files(args.images, res, args.resize), [Path(p).stem for p in args.images], None
    detections = []
    for i in range(0, len(images), 32):
        outputs = golden.run_outputs(images[i:i + 32])
        detections += detections_from_outputs(outputs, graph, res, args.top_k)
    if not names:
        names = [str(c) for c in range(detector_classes(graph))]
    if args.images:
        for path, det in zip(args.images, detections):
            keep = det.scores >= args.score
            boxes = "; ".join(f"{names[int(c)]} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                              for b, s, c in zip(det.boxes[keep], det.scores[keep], det.labels[keep]))
            print(f"{path}: {int(keep.sum())} boxes with score ≥ {args.score}" + (f": {boxes}" if boxes else ""))
    else:
        ap, per_class = mean_ap(detections, data.boxes, data.labels, data.difficult, len(names))
        print(f"golden model AP50 (VOC07 11-point) on {len(images)} images of {args.dataset} ({args.split}): "
              f"{ap:.2f} %")
        for name, a in zip(names, per_class):
            print(f"  {name:<16} {'  n/a' if a != a else f'{a:5.1f}'} %")
    if args.draw:
        scale = max(1, 256 // res)
        for i, det in enumerate(detections):
            draw_detections(images[i], det, names, Path(args.draw) / f"{ids[i]}.png", score_threshold=args.score,
                            ground_truth=None if truth is None else truth[i], scale=scale)
        print(f"drew {len(detections)} images with their boxes to {args.draw}")


def cmd_compare(args: argparse.Namespace) -> None:
    from .decode import is_detector
    from .graph import load
    from .train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint)
    graph = load(args.ir)
    exported_from = graph.meta.get("model_config")
    if exported_from is not None and exported_from != model.config:
        differ = sorted(k for k in set(exported_from) | set(model.config) if exported_from.get(k) != model.config.get(k))
        raise CodesignError(f"{args.ir} was not exported from {args.checkpoint}'s model: they differ in "
                            + ", ".join(f"{k} ({exported_from.get(k)!r} vs {model.config.get(k)!r})" for k in differ))
    res = graph.tensors[graph.input].shape[0]
    if is_detector(graph):
        from .data.voc import load_detection_set
        from .quant.compare import compare_detection

        report = compare_detection(model, graph, load_detection_set(args.dataset, args.split, res, limit=args.limit),
                                   min_score=args.score)
    else:
        from .data import load_dataset
        from .quant.compare import compare

        data = load_dataset(args.dataset, res, args.split, resize=args.resize).take(args.limit)
        report = compare(model, graph, data.images, data.labels)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1, sort_keys=True))


def _hw_for(args: argparse.Namespace, graph):
    from .hw.config import HardwareConfig
    from .hw.limits import sized_for

    if args.hw:
        hw = HardwareConfig.load(args.hw)
        return hw if args.board is None else hw.with_(board=args.board)
    return sized_for(graph, HardwareConfig.for_board(args.board or "ultra96v2"))


def cmd_compile(args: argparse.Namespace) -> None:
    from .graph import load
    from .hls.project import write_project

    from .figures import CODE_DERIVED
    from .hls.fit import fitting_config, refuse_unless_fits

    graph = load(args.model)
    hw = _hw_for(args, graph)
    if args.hw:  # the user's engine: refused when it does not fit
        fit = refuse_unless_fits(graph, hw, args.margin)
    else:  # the default engine, or the fastest smaller one that fits
        hw, fit, note = fitting_config(graph, hw, args.margin)
        if note:
            print(f"codesign: {note}")
    project = write_project(graph, hw, args.output, args.name, keep_intermediate=args.keep_intermediate)
    s = project.schedule
    print(f"wrote {project.path}: {len(s.calls)} engine calls, {len(s.buffers)} buffers, "
          f"{s.wmem.size} weight bytes, host layers: {', '.join(s.host_layers) or 'none'}")
    print(f"{hw.pi}x{hw.po} engine: {fit.summary()} [{CODE_DERIVED}]")


def cmd_csim(args: argparse.Namespace) -> None:
    from .hls.simulate import simulate_project

    report = simulate_project(Path(args.project), per_call=not args.end_to_end_only, testbench=not args.no_testbench)
    print(report)
    if args.cycles or args.json:
        from .hls.cycles import count_project

        counted = count_project(Path(args.project))
        print(counted.table())
        print(counted.summary())
        if args.json:
            print(f"cycle count: {counted.write_json(args.json)}")


def cmd_bitstream(args: argparse.Namespace) -> None:
    from .figures import SYNTHESIZED
    from .hls.reports import Implementation, load_figures
    from .hls.vendor import run_vendor_flow

    logs = run_vendor_flow(Path(args.project), allow_timing_violation=args.allow_timing_violation)
    print(f"vendor flow finished; logs: {', '.join(str(p) for p in logs.values())}")
    _, impl = load_figures(Path(args.project))
    if impl:
        figures = Implementation.from_json(impl)
        print(f"timing [{SYNTHESIZED}]: clock {figures.clock} {figures.clock_mhz:.1f} MHz, WNS {figures.wns_ns:.3f} ns, "
              f"meets up to {figures.fmax_mhz:.1f} MHz")
        if figures.violation():
            print(f"codesign: warning: {figures.violation()}; kept because of --allow-timing-violation",
                  file=sys.stderr)


def cmd_deploy(args: argparse.Namespace) -> None:
    from .deploy import build_deploy_package

    path = build_deploy_package(Path(args.project), Path(args.output), max_batch=args.max_batch)
    print(f"wrote deploy package {path} (copy it to the board; see its README.md)")


def cmd_run(args: argparse.Namespace) -> None:
    from .driver.runtime import run_images

    for path, pred in zip(args.images, run_images(Path(args.package), args.images, device=args.device,
                                                  resize=args.resize, top_k=args.top_k, batch=args.batch,
                                                  timeout_s=args.timeout)):
        print(f"{path}: {pred}")


def cmd_benchmark(args: argparse.Namespace) -> None:
    from .driver.runtime import benchmark

    report = benchmark(Path(args.package), device=args.device, frames=args.frames, batch=args.batch,
                       timeout_s=args.timeout)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1, sort_keys=True))


def cmd_explore(args: argparse.Namespace) -> None:
    from .estimate import estimate, explore
    from .figures import CYCLE_COUNTED, MODELED
    from .graph import load

    from .hls.fit import rendered_resources

    graph = load(args.model)
    result = explore(graph, board=args.board, batch_n=args.batch, workers=args.jobs, out_dir=Path(args.output),
                     code_fit=lambda hw: rendered_resources(graph, hw).violations(args.margin))
    print(result.table())
    print(f"FPS above: {MODELED}; it agrees with the {CYCLE_COUNTED} within 15 % per call (tests/test_cycles.py).")
    print(f"chosen hardware config: {Path(args.output) / 'hw_best.yaml'} (use with `codesign compile --hw`)")
    if args.count:  # compile the choice and count it: the figure from the code itself
        from .hls.cycles import count_project
        from .hls.project import write_project

        project = write_project(graph, result.best, Path(args.output) / "best-project")
        counted = count_project(project.path)
        system = estimate(graph, result.best, engine_cycles=[c.total for c in counted.calls])
        print(counted.summary())
        print(f"chosen config at batch 1: {system.fps:.1f} FPS with the engine {CYCLE_COUNTED} "
              f"(host and control modeled), modeled {estimate(graph, result.best).fps:.1f} FPS")


def cmd_sensitivity(args: argparse.Namespace) -> None:
    import torch

    from .data import load_dataset
    from .data.classification import to_input
    from .quant.sensitivity import SensitivityError, measure, spearman, write_outputs
    from .train.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint, quantize=False)  # the float twin of its latent weights
    if model.config.get("model") in DETECTORS:
        raise SensitivityError(f"{args.checkpoint}: a detector; sensitivity measures classifiers (cross-entropy) only")
    train_cfg = meta.get("metrics", {}).get("train_config", {})
    dataset = args.dataset or train_cfg.get("dataset", "digits")
    data = load_dataset(dataset, model.config["resolution"], "train", args.seed).take(args.images)
    x, y = to_input(data.images), torch.as_tensor(data.labels).long()
    result = measure(model, x, y, bits=args.bits, samples=args.samples, seed=args.seed, progress=args.progress)
    rho = spearman([r.omega for r in result], [r.quant_loss_increase for r in result])
    print(f"{'rank':>4}  {'layer':<34}{'params':>8}{'tr(H)':>11}{'± s.e.':>9}{'Ω':>11}{'Δloss':>9}")
    for i, r in enumerate(sorted(result, key=lambda r: -r.omega), start=1):
        print(f"{i:>4}  {r.name:<34}{r.params:>8}{r.hessian_trace:>11.3f}{r.trace_stderr:>9.3f}{r.omega:>11.5f}"
              f"{r.quant_loss_increase:>9.4f}")
    print(f"Ω = tr(H)/n · ‖Q{args.bits}(W) − W‖² (Hutchinson, {args.samples} samples, {len(x)} {dataset} train images); "
          f"Δloss: that layer alone at {args.bits} bits; rank correlation of the two {rho:.2f}")
    js, png = write_outputs(result, {"checkpoint": Path(args.checkpoint).name, "dataset": str(dataset),
                                     "images": len(x), "samples": args.samples, "bits": args.bits, "seed": args.seed,
                                     "spearman_omega_vs_loss": rho}, args.output)
    print(f"wrote {js} and {png}")


def cmd_report(args: argparse.Namespace) -> None:
    from .estimate import write_report
    from .graph import load

    graph = load(args.model)
    if args.project and not args.hw:  # the estimate of the engine the project was compiled for
        args.hw = str(Path(args.project) / "hw.yaml")
    paths = write_report(graph, _hw_for(args, graph), Path(args.output), batch=args.batch)
    print(paths["table"].read_text())
    print(f"plots: {paths['roofline']}, {paths['resources']}; data: {paths['json']}")
    if args.project:
        _report_synthesis(Path(args.project), paths["json"])


def _report_synthesis(project: Path, estimate_json: Path) -> None:
    """Estimate beside what Vitis HLS / Vivado reported for the project, when they have run."""
    from .hls.reports import load_figures, side_by_side
    from .readers import read_json

    hls, impl = load_figures(project)
    if hls is None and impl is None:
        print(f"no synthesis figures in {project}/reports yet (run `codesign bitstream --project {project}`)")
        return
    print(side_by_side(read_json(estimate_json, "estimate")["resources"]["used"], hls, impl))
    out = estimate_json.with_name("synthesis.json")
    out.write_text(json.dumps({"hls": hls, "implementation": impl}, indent=1, sort_keys=True) + "\n")
    print(f"synthesis figures: {out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codesign", description="Quantized CNN → bit-exact integer model → FPGA engine")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    from .architectures import add_quant_arguments
    from .images import RESIZE_MODES
    from .estimate.fit import DEFAULT_MARGIN

    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("summary", help="layers, parameters and MACs of a model, checkpoint or IR")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--ir", help="an exported IR file")
    src.add_argument("--checkpoint", help="a training checkpoint")
    s.add_argument("--model", default="diracdeltanet", help="diracdeltanet or codenet")
    s.add_argument("--config", help="CoDeNet configuration a..e (default c)")
    s.add_argument("--classes", type=int, help="default: 1000 (DiracDeltaNet), 20 (CoDeNet)")
    s.add_argument("--width", type=float, help="channel multiplier (default 1.0)")
    s.add_argument("--resolution", type=int, help="input side (default: 224, or the CoDeNet config's)")
    add_quant_arguments(s)
    s.set_defaults(func=cmd_summary)

    # The options depend on --model (classifier or detector): cmd_train parses them with train_parser.
    t = sub.add_parser("train", help="float pre-training then QAT; writes a checkpoint "
                       "(`codesign train [--model codenet] --help`)", add_help=False)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="QAT checkpoint → integer IR (and optionally QONNX)")
    e.add_argument("checkpoint")
    e.add_argument("-o", "--output", required=True, help="IR file to write (.ir)")
    e.add_argument("--qonnx", help="also write the Brevitas model as QONNX to this path")
    e.add_argument("--name", help="graph name (default: the model name)")
    e.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help="QONNX model (brevitas.export.export_qonnx) → integer IR")
    im.add_argument("model", help="the .onnx file")
    im.add_argument("-o", "--output", required=True, help="IR file to write (.ir)")
    im.add_argument("--name", help="graph name (default: the file's name)")
    im.set_defaults(func=cmd_import)

    def add_data_args(q: argparse.ArgumentParser, images: bool) -> None:
        grp = q.add_mutually_exclusive_group(required=True)
        grp.add_argument("--dataset", help="'digits', an ImageFolder-style directory, or (detectors) a "
                                           "Pascal VOC directory")
        if images:
            grp.add_argument("--images", nargs="+", help="image files to classify")
            grp.add_argument("--npy", help="float input (N, C, H, W) as the framework feeds it: quantized, run, "
                                           "and the float output printed (or written with --save)")
        q.add_argument("--split", default="test", help="train or test; a VOC set: any ImageSets/Main split")
        add_resize_arg(q)

    def add_resize_arg(q: argparse.ArgumentParser) -> None:
        q.add_argument("--resize", choices=RESIZE_MODES, default="refuse",
                       help="an image of another size than the model's: refuse it (default), or resize it "
                            "(nearest / bilinear); the same rule in golden, compare and run")

    gd = sub.add_parser("golden", help="run the bit-exact integer golden model: top-1, or AP50 and boxes")
    gd.add_argument("--ir", required=True)
    add_data_args(gd, images=True)
    gd.add_argument("--draw", help="detectors: write each image with its boxes as PNG into this directory")
    gd.add_argument("--score", type=float, default=0.3, help="detectors: least score of a box printed or drawn")
    gd.add_argument("--top-k", type=int, default=100, help="detectors: boxes decoded per image")
    gd.add_argument("--save", help="with --npy: write the float output to this .npy file")
    gd.set_defaults(func=cmd_golden)

    c = sub.add_parser("compare", help="agreement of golden and fake-quant models, per layer and top-1")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--ir", required=True)
    add_data_args(c, images=False)
    c.add_argument("--limit", type=int, help="compare on the first n images only")
    c.add_argument("--score", type=float, default=0.1, help="detectors: least fake-quant score of a box compared")
    c.add_argument("--json", help="also write the report as JSON")
    c.set_defaults(func=cmd_compare)

    cp = sub.add_parser("compile", help="integer IR → complete HLS/Vivado project (sources, weights, schedule, Tcl)")
    cp.add_argument("--model", required=True, help="IR file (from `codesign export`)")
    cp.add_argument("--board", help="board name (boards/*.yaml); default ultra96v2")
    cp.add_argument("--hw", help="hardware config YAML (default: sized for the model on the board)")
    cp.add_argument("--name", help="project name (default: the graph name)")
    cp.add_argument("--keep-intermediate", action="store_true",
                    help="also write the scheduler's plan after each pass (intermediate/01-fuse.json …)")
    cp.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                    help=f"share of each board resource the engine may take (default {DEFAULT_MARGIN}: the rest is "
                         "routing headroom); judged on the rendered engine (docs/estimator.md, code-derived)")
    cp.add_argument("-o", "--output", required=True, help="project directory to write")
    cp.set_defaults(func=cmd_compile)

    cs = sub.add_parser("csim", help="C-simulate a compiled project bit for bit against the golden model")
    cs.add_argument("--project", required=True)
    cs.add_argument("--end-to-end-only", action="store_true", help="skip the per-call check")
    cs.add_argument("--no-testbench", action="store_true", help="skip the stand-alone C++ testbench")
    cs.add_argument("--cycles", action="store_true",
                    help="also count cycles: per call and stage, cycles per frame, FPS at the clock, MAC utilisation")
    cs.add_argument("--json", metavar="FILE", help="write the cycle count as JSON (implies --cycles)")
    cs.set_defaults(func=cmd_csim)

    bs = sub.add_parser("bitstream", help="run Vitis HLS and Vivado on a compiled project (.bit + .hwh)")
    bs.add_argument("--project", required=True)
    bs.add_argument("--allow-timing-violation", action="store_true",
                    help="keep a bitstream whose routed design misses the clock (negative slack); the deploy "
                         "package and the driver then warn instead of refusing it")
    bs.set_defaults(func=cmd_bitstream)

    dp = sub.add_parser("deploy", help="compiled project → self-contained folder to copy to the board")
    dp.add_argument("--project", required=True)
    dp.add_argument("-o", "--output", required=True)
    dp.add_argument("--max-batch", type=int, default=4, help="frames the runtime may run back to back")
    dp.set_defaults(func=cmd_deploy)

    def add_device_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--package", required=True, help="deploy package directory (from `codesign deploy`)")
        q.add_argument("--device", choices=["sim", "pynq"], default="sim",
                       help="pynq: the board; sim: the C-simulated engine behind the same driver")
        q.add_argument("--batch", type=int, default=1)
        q.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the engine")

    rn = sub.add_parser("run", help="classify image files through the driver (board or simulated device)")
    add_device_args(rn)
    rn.add_argument("images", nargs="+")
    add_resize_arg(rn)
    rn.add_argument("--top-k", type=int, default=5)
    rn.set_defaults(func=cmd_run)

    bm = sub.add_parser("benchmark", help="FPS and per-call times through the driver")
    add_device_args(bm)
    bm.add_argument("--frames", type=int, default=32)
    bm.add_argument("--json", help="also write the report as JSON")
    bm.set_defaults(func=cmd_benchmark)

    ex = sub.add_parser("explore", help="sweep engine parameters for a board: Pareto front, best config")
    ex.add_argument("--model", required=True, help="IR file")
    ex.add_argument("--board", default="ultra96v2")
    ex.add_argument("--batch", type=int, default=16, help="batch size for the batch-N column")
    ex.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    ex.add_argument("-o", "--output", default="build/explore", help="directory for explore.json, pareto.png, hw_best.yaml")
    ex.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                    help=f"share of each board resource a config may take (default {DEFAULT_MARGIN}), judged on the "
                         "rendered engine of each candidate in rank order")
    ex.add_argument("--count", action="store_true",
                    help="compile the chosen config and print its cycle-counted C-sim figure beside the model")
    ex.set_defaults(func=cmd_explore)

    sn = sub.add_parser("sensitivity", help="per-layer quantization sensitivity of a classifier checkpoint "
                                            "(Hessian trace, HAWQ-v2 Ω, loss at b bits): table, JSON, plot")
    sn.add_argument("--checkpoint", required=True)
    sn.add_argument("--dataset", help="'digits' or an ImageFolder directory (default: the checkpoint's)")
    sn.add_argument("--bits", type=int, default=2, help="the weight width whose perturbation is measured")
    sn.add_argument("--images", type=int, default=512, help="training images the loss is taken over")
    sn.add_argument("--samples", type=int, default=16, help="Hutchinson samples (Hessian-vector products)")
    sn.add_argument("--seed", type=int, default=0)
    sn.add_argument("--no-progress", dest="progress", action="store_false")
    sn.add_argument("-o", "--output", default="build/sensitivity", help="directory for sensitivity.json and .png")
    sn.set_defaults(func=cmd_sensitivity)

    rp = sub.add_parser("report", help="per-layer estimate: table, roofline and resource plots, JSON")
    rp.add_argument("--model", required=True, help="IR file")
    rp.add_argument("--board", help="board name (default ultra96v2)")
    rp.add_argument("--hw", help="hardware config YAML (default: sized for the model on the board)")
    rp.add_argument("--batch", type=int, default=1)
    rp.add_argument("--project", help="a compiled project: its hw.yaml (unless --hw), and beside the estimate what "
                                      "`codesign bitstream` parsed from the Vitis HLS / Vivado reports")
    rp.add_argument("-o", "--output", default="build/report")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        args.train_args = rest  # parsed by train_parser, whose options depend on --model
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        args.func(args)
    except (CodesignError, OSError) as e:
        if args.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"codesign: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
