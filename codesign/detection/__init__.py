"""CenterNet detection around CoDeNet: targets, loss, NumPy decode, VOC07 AP50, drawing, training."""
from .ap import class_ap, iou, mean_ap, voc07_ap
from ..decode import TOP_K, Detections, decode, decode_batch
from .draw import draw_detections
from .loss import detection_loss, focal_loss
from .targets import batch_targets, centernet_targets, gaussian_radius
from .train import (DETECTION_PRESETS, DetectionTrainConfig, add_detection_train_arguments, evaluate_ap,
                    run_detection_from_args, train_detection)

__all__ = ["DETECTION_PRESETS", "Detections", "DetectionTrainConfig", "TOP_K", "add_detection_train_arguments",
           "batch_targets", "centernet_targets", "class_ap", "decode", "decode_batch", "detection_loss",
           "draw_detections", "evaluate_ap", "focal_loss", "gaussian_radius", "iou", "mean_ap",
           "run_detection_from_args", "train_detection", "voc07_ap"]
