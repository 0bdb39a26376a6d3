"""Data sets as uint8 pixel arrays (the integers the hardware sees) plus labels."""
from .classification import (DatasetError, ImageSet, load_dataset, load_digits, load_image, load_image_files,
                             load_image_folder, stratified_split, to_input)

__all__ = ["DatasetError", "ImageSet", "load_dataset", "load_digits", "load_image", "load_image_files",
           "load_image_folder", "stratified_split", "to_input"]
