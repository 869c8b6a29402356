#!/usr/bin/env bash
# The demo: real data (scikit-learn's breast-cancer table) → describe → train → evaluate → predict.
set -euo pipefail
PY=${1:-.venv/bin/python}
DW="$(dirname "$PY")/deepwell"
mkdir -p demo-data
"$PY" examples/make_demo_data.py demo-data
echo "== 1. what deepwell sees in the table"
"$DW" describe demo-data/breast_cancer.csv --target diagnosis
echo "== 2. train (held-out test split, beside the majority-class baseline)"
"$DW" train demo-data/breast_cancer.csv --target diagnosis --output runs --name demo-breast-cancer --quiet
RUN=$(ls -d runs/demo-breast-cancer* | sort -V | tail -n 1)
echo "== 3. predict new rows (the label column is not needed)"
"$DW" predict "$RUN" demo-data/new_patients.csv -o demo-data/predictions.csv
"$PY" -c "import pandas as pd; t = pd.read_csv('demo-data/predictions.csv'); \
print(t[['mean radius', 'mean texture', 'prediction', 'probability_malignant']].to_string(index=False))"
echo "== the run folder"
ls "$RUN" "$RUN/model"
