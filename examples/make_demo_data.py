"""Write scikit-learn's breast-cancer table (real data, shipped with scikit-learn) as CSV files for the demo."""

import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data")
out.mkdir(parents=True, exist_ok=True)
table = load_breast_cancer(as_frame=True).frame
table["diagnosis"] = table.pop("target").map({0: "malignant", 1: "benign"})
table.to_csv(out / "breast_cancer.csv", index=False)
table.drop(columns="diagnosis").sample(8, random_state=1).to_csv(out / "new_patients.csv", index=False)
print(f"wrote {out / 'breast_cancer.csv'} ({len(table)} rows) and {out / 'new_patients.csv'} (8 rows to predict)")
