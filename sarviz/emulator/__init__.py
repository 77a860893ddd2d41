"""CPU SAR emulator: AlphaEarth embedding → σ⁰ VV/VH (radiometric model) × Sentinel-1 speckle."""
