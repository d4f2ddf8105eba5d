"""Model building blocks: encoders, fusion bottleneck, temporal head and the full MMA-DFER."""
