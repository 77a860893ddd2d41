"""Ray batch synthesis over points and regions, its STAC catalogs, and the evaluation of batches."""
