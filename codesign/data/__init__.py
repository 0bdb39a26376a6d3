"""Data sets as uint8 pixel arrays (the integers the hardware sees) plus labels: in memory
(`classification`) or streamed from an image folder (`folder`)."""
from .classification import (DatasetError, ImageSet, load_dataset, load_digits, load_image, load_image_files,
                             load_image_folder, stratified_split, to_input)
from .folder import FileIndex, FolderDataset, index_image_folder

__all__ = ["DatasetError", "FileIndex", "FolderDataset", "ImageSet", "index_image_folder", "load_dataset",
           "load_digits", "load_image", "load_image_files", "load_image_folder", "stratified_split", "to_input"]
