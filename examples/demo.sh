#!/usr/bin/env bash
# The demo: real data (scikit-learn's breast-cancer table) → describe → train → evaluate → predict,
# then computer vision on scikit-learn's digit scans written as PNG class folders.
set -euo pipefail
PY=${1:-.venv/bin/python}
DW="$(dirname "$PY")/deepwell"
mkdir -p demo-data
"$PY" examples/make_demo_data.py demo-data
echo "== 1. what deepwell sees in the table"
"$DW" describe demo-data/breast_cancer.csv --target diagnosis
echo "== 2. train (held-out test split, beside the majority-class baseline)"
"$DW" train demo-data/breast_cancer.csv --target diagnosis --output runs --name demo-breast-cancer --quiet \
  --tracking-uri sqlite:///demo-data/mlflow.db --experiment demo --register breast-cancer
RUN=$(ls -d runs/demo-breast-cancer* | sort -V | tail -n 1)
echo "== 3. predict new rows (the label column is not needed)"
"$DW" predict "$RUN" demo-data/new_patients.csv -o demo-data/predictions.csv
"$PY" -c "import pandas as pd; t = pd.read_csv('demo-data/predictions.csv'); \
print(t[['mean radius', 'mean texture', 'prediction', 'probability_malignant']].to_string(index=False))"
echo "== the run folder (open report.html in a browser: profile, curves, confusion matrix, ROC)"
ls "$RUN" "$RUN/model"
echo "== tracked in MLflow (mlflow ui --backend-store-uri sqlite:///demo-data/mlflow.db to browse)"
"$DW" runs --experiment demo --tracking-uri sqlite:///demo-data/mlflow.db

echo "== 4. computer vision: a folder of PNG scans sorted by class (scikit-learn's digits)"
"$PY" -c "from deepwell.sample_data import write_digits; write_digits('demo-data/digits', split_folders=True)"
"$DW" train demo-data/digits --config examples/digits.yaml --output runs --name demo-digits --quiet \
  --tracking-uri sqlite:///demo-data/mlflow.db --experiment demo
RUN=$(ls -d runs/demo-digits* | sort -V | tail -n 1)
echo "== 5. predict every image in a folder: the held-out 7s (test/7, never seen in training)"
"$DW" predict "$RUN" demo-data/digits/test/7 -o demo-data/digit_predictions.csv
"$PY" -c "import pandas as pd; t = pd.read_csv('demo-data/digit_predictions.csv'); \
print(t[['image', 'prediction', 'probability_7']].head(5).to_string(index=False)); \
print(f'{(t.prediction == 7).sum()} of the {len(t)} held-out 7s predicted as 7')"
