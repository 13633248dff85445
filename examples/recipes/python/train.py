"""The recipe-category training job in Python: the same data and the same held-out split as
the Rust job (src/jobs.rs), with scikit-learn, reading the recipes through the public
`queuery-client` and the labels through kondate's label export — jobs are
language-agnostic.

Environment (what `kondate apps run` gives a job, or set by hand):
  QUEUERY_ENDPOINT / QUEUERY_TOKEN / QUEUERY_TOKEN_SECRET   (or the KONDATE_* names)

Prints a JSON report: rows, accuracy, macro-F1 and the majority-class baseline.
"""

import io
import json
import os
import sys

import pandas as pd
import requests
from queuery_client import QueueryClient
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def env(*names):
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    sys.exit(f"set {names[0]}")


ENDPOINT = env("KONDATE_ENDPOINT", "QUEUERY_ENDPOINT").rstrip("/")
AUTH = (env("KONDATE_TOKEN", "QUEUERY_TOKEN"), env("KONDATE_TOKEN_SECRET", "QUEUERY_TOKEN_SECRET"))


def labels(name):
    """The latest revision of a label set, as a DataFrame."""
    r = requests.get(f"{ENDPOINT}/v1/labels/{name}/revisions", auth=AUTH, timeout=60)
    r.raise_for_status()
    revision = r.json()["revisions"][-1]["revision"]
    r = requests.get(
        f"{ENDPOINT}/v1/labels/{name}/revisions/{revision}/export",
        params={"format": "csv"},
        auth=AUTH,
        timeout=300,
    )
    r.raise_for_status()
    return pd.read_csv(io.BytesIO(r.content), dtype=str, keep_default_na=False), revision


def main():
    # queuery-client reads its credentials from QUEUERY_TOKEN / QUEUERY_TOKEN_SECRET.
    os.environ["QUEUERY_TOKEN"], os.environ["QUEUERY_TOKEN_SECRET"] = AUTH
    client = QueueryClient(endpoint=ENDPOINT, enable_cast=True)
    cats, revision = labels("recipe_category")
    cats = cats[cats["category"] != ""].copy()
    cats["recipe_id"] = cats["recipe_id"].astype(int)
    names, _ = labels("ingredient_names")
    canonical = dict(zip(names["variant"], names["canonical"]))
    lo, hi = int(cats["recipe_id"].min()), int(cats["recipe_id"].max())
    recipes = client.run(
        f"SELECT id, title, description FROM recipes.recipes WHERE id BETWEEN {lo} AND {hi}"
    ).read(use_pandas=True)
    lines = client.run(
        f"SELECT recipe_id, name FROM recipes.recipe_ingredients WHERE recipe_id BETWEEN {lo} AND {hi}"
    ).read(use_pandas=True)
    lines["name"] = lines["name"].map(lambda n: canonical.get(n, n))
    ingredients = lines.groupby("recipe_id")["name"].apply(" ".join)
    recipes["text"] = (
        recipes["title"].fillna("")
        + " "
        + recipes["description"].fillna("")
        + " "
        + recipes["id"].map(ingredients).fillna("")
    )
    data = cats.merge(recipes, left_on="recipe_id", right_on="id")
    test = data["recipe_id"] % 5 == 0
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x_train = vec.fit_transform(data.loc[~test, "text"])
    model = LogisticRegression(max_iter=2000).fit(x_train, data.loc[~test, "category"])
    truth = data.loc[test, "category"]
    predicted = model.predict(vec.transform(data.loc[test, "text"]))
    majority = data.loc[~test, "category"].mode()[0]
    print(
        json.dumps(
            {
                "labels_revision": int(revision),
                "train_rows": int((~test).sum()),
                "test_rows": int(test.sum()),
                "accuracy": accuracy_score(truth, predicted),
                "macro_f1": f1_score(truth, predicted, average="macro"),
                "baseline_accuracy": float((truth == majority).mean()),
            }
        )
    )


if __name__ == "__main__":
    main()
