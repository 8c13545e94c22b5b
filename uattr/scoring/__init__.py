"""Scoring: speaker verification (trials, cosine scoring, score normalisation, EER/minDCF, DET), retrieval
(R@k, MRR, xSIM), layer-weight plots and RESULTS.md tables."""
