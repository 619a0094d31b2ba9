"""The positionality page: one self-contained HTML file (plots inline) that STS readers can read and cite.

Sections: what is not shown, coding agreement, codes by group, distinctive language (with excerpts), story features,
reviewers' ratings against the accepted dataset, the tuned model by group; each ends with a methods paragraph,
and the page ends with the references they cite. Every text that came from a participant or a file is escaped.
"""

from __future__ import annotations

import base64
import html
import re

from codigit.analysis.page import REPORT_CSS, html_table
from codigit.analysis.positionality_plots import (
    TOP_TERMS,
    alpha_plot,
    codes_plot,
    distinctive_plot,
    model_plot,
    ratings_plot,
)

MAX_PANELS = 12  # distinctive-language small multiples; more would be unreadable on a phone
REFERENCES = {
    "santy2023": "Santy, S., Liang, J. T., Le Bras, R., Reinecke, K., &amp; Sap, M. (2023). NLPositionality: "
    "Characterizing Design Biases of Datasets and Models. In <i>Proceedings of the 61st Annual Meeting of the "
    "Association for Computational Linguistics (Volume 1: Long Papers)</i> (pp. 9080–9102). Toronto: ACL. "
    "https://doi.org/10.18653/v1/2023.acl-long.505",
    "krippendorff2011": "Krippendorff, K. (2011). <i>Computing Krippendorff's Alpha-Reliability</i>. Departmental "
    "Papers (ASC) 43, Annenberg School for Communication, University of Pennsylvania. "
    "https://repository.upenn.edu/asc_papers/43",
    "krippendorff2018": "Krippendorff, K. (2018). <i>Content Analysis: An Introduction to Its Methodology</i> "
    "(4th ed.). Thousand Oaks, CA: SAGE.",
    "oconnor2020": "O'Connor, C., &amp; Joffe, H. (2020). Intercoder Reliability in Qualitative Research: Debates "
    "and Practical Guidelines. <i>International Journal of Qualitative Methods</i>, 19, 1–13. "
    "https://doi.org/10.1177/1609406919899220",
    "monroe2008": "Monroe, B. L., Colaresi, M. P., &amp; Quinn, K. M. (2008). Fightin' Words: Lexical Feature "
    "Selection and Evaluation for Identifying the Content of Political Conflict. <i>Political Analysis</i>, "
    "16(4), 372–403. https://doi.org/10.1093/pan/mpn018",
    "bh1995": "Benjamini, Y., &amp; Hochberg, Y. (1995). Controlling the False Discovery Rate: A Practical and "
    "Powerful Approach to Multiple Testing. <i>Journal of the Royal Statistical Society: Series B "
    "(Methodological)</i>, 57(1), 289–300. https://doi.org/10.1111/j.2517-6161.1995.tb02031.x",
    "davison1997": "Davison, A. C., &amp; Hinkley, D. V. (1997). <i>Bootstrap Methods and Their Application</i>. "
    "Cambridge: Cambridge University Press. https://doi.org/10.1017/CBO9780511802843",
    "sweeney2002": "Sweeney, L. (2002). k-Anonymity: A Model for Protecting Privacy. <i>International Journal of "
    "Uncertainty, Fuzziness and Knowledge-Based Systems</i>, 10(5), 557–570. "
    "https://doi.org/10.1142/S0218488502001648",
    "bender2018": "Bender, E. M., &amp; Friedman, B. (2018). Data Statements for Natural Language Processing: "
    "Toward Mitigating System Bias and Enabling Better Science. <i>Transactions of the Association for "
    "Computational Linguistics</i>, 6, 587–604. https://doi.org/10.1162/tacl_a_00041",
}
SECTIONS = {
    "not-shown": "What is not shown",
    "coding": "Coding and agreement",
    "codes": "Codes by group",
    "language": "Distinctive language by group",
    "stories": "Stories by author group",
    "ratings": "Reviewers' ratings and the accepted dataset",
    "model": "The tuned model by group",
    "references": "References",
}
NO_CODING = (
    "No coding round has been reconciled yet. To code the stories, run <code>codigit coding open ROUND --codebook "
    "annotation/codebook.yaml</code>, then <code>codigit coding agreement ROUND</code> and <code>codigit coding "
    "reconcile ROUND</code>."
)


def e(value) -> str:
    return html.escape(str(value))


def cite(*keys: str) -> str:
    names = {"santy2023": "Santy et al. 2023", "krippendorff2011": "Krippendorff 2011",
             "krippendorff2018": "Krippendorff 2018", "oconnor2020": "O'Connor &amp; Joffe 2020",
             "monroe2008": "Monroe, Colaresi &amp; Quinn 2008", "bh1995": "Benjamini &amp; Hochberg 1995",
             "davison1997": "Davison &amp; Hinkley 1997", "sweeney2002": "Sweeney 2002",
             "bender2018": "Bender &amp; Friedman 2018"}  # fmt: skip
    return "(" + "; ".join(f"<a href='#ref-{k}'>{names[k]}</a>" for k in keys) + ")"


def figure(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (f"<figure><img alt='{e(alt)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip


def table(frame) -> str:
    """A frame as a table that scrolls sideways on a narrow screen, numbers to 3 significant digits."""
    shown = frame.copy()
    for column in shown.select_dtypes("float").columns:
        shown[column] = [f"{v:.3g}" if v == v else "" for v in shown[column]]
    return f"<div class='scroll'>{html_table(shown)}</div>"


def methods(text: str) -> str:
    return f"<p class='methods'><strong>Methods.</strong> {text}</p>"


def highlight(text: str, term: str) -> str:
    """The excerpt escaped, each whole-word occurrence of `term` in <mark> (any case, either apostrophe, any
    run of spaces between the words of a phrase, as `language.tokens` reads them)."""
    words = [re.escape(w).replace("'", "['’]") for w in str(term).split()]
    if not words:
        return e(text)
    pattern = r"(?<!\w)(" + r"\s+".join(words) + r")(?!\w)"
    parts = re.split(pattern, str(text), flags=re.IGNORECASE)
    return "".join(f"<mark>{e(p)}</mark>" if i % 2 else e(p) for i, p in enumerate(parts))


def section(key: str, body: str) -> str:
    return f"<section id='{key}'><h2>{SECTIONS[key]}</h2>\n{body}\n</section>"


def not_shown(k: int, summary: dict, suppressed) -> str:
    lines = "".join(f"<li>{e(line)}</li>" for line in suppressed) or "<li>No answer had to be pooled.</li>"
    excluded = summary.get("excluded") or {}
    gone = "".join(f"<li>{e(why)}: {e(n)}</li>" for why, n in excluded.items() if n) or "<li>Nothing.</li>"
    return (
        f"<p>Every group on this page has at least <strong>k = {e(k)}</strong> people; smaller answers were pooled "
        f"or left out:</p><ul>{lines}</ul><p>What was not read at all:</p><ul>{gone}</ul>"
        + methods(
            "A group is one answer to one positionality question, formed only from people who allowed that "
            "answer's use. An answer held by fewer than k people is pooled into “other/suppressed”; when the "
            "pooled group itself has fewer than k people it is dropped, so that no figure or table describes "
            f"fewer than k people (k-anonymity, {cite('sweeney2002')}). A multi-label answer puts a person "
            "in several groups. The counts of excluded people are reported as part of a data statement "
            f"{cite('bender2018')}."
        )  # fmt: skip
    )


def coding_section(coding: dict | None) -> str:
    if coding is None:
        return f"<p>{NO_CODING}</p>"
    import pandas as pd

    rows = list(coding.get("alpha") or [])
    defined = [r for r in rows if None not in (r.get("alpha"), r.get("ci_low"), r.get("ci_high"))]  # n/a: table only
    done = coding.get("reconciled") or {}
    parts = [f"<p>Round {e(coding.get('round', '?'))}, codebook version {e(coding.get('codebook_version', '?'))}: "
             f"{e(coding.get('coders', '?'))} coders coded {e(coding.get('stories', '?'))} stories independently. "
             f"Reconciled: {e(done.get('unanimous', 0))} unanimous, {e(done.get('majority', 0))} by the coders' "
             f"majority, {e(done.get('adjudicator', 0))} by an adjudicator, {e(done.get('one_coder', 0))} coded by "
             f"one coder only, {e(done.get('unresolved', 0))} with a code unresolved (chosen by exactly half the "
             "coders: left out of the counts below).</p>"]  # fmt: skip
    if defined:
        parts.append(
            figure(
                alpha_plot(defined),
                "Krippendorff's alpha per code with 95% confidence intervals",
                "Krippendorff's α per code (dot) with its 95% bootstrap CI; dotted lines at 0.667 "
                "(tentative conclusions) and 0.8 (reliable) " + cite("krippendorff2018") + ".",
            )
        )
    if rows:
        parts.append(table(pd.DataFrame(rows).astype(object).fillna("n/a")))  # undefined: no variation
    parts.append(methods(
        "Each code is one binary variable per story (a coder gave the code or not), and its agreement is "
        "Krippendorff's α at the nominal level, computed from the coincidence matrix " + cite("krippendorff2011")
        + "; 95% CI: percentile bootstrap resampling stories. α = 1 is perfect agreement, 0 is what chance "
        "would give. We read α ≥ 0.8 as reliable and 0.667 ≤ α < 0.8 as enough for tentative conclusions only "
        + cite("krippendorff2018") + ". Agreement is reported to show that the codebook is shared and applied "
        "consistently, not as proof that a code is true of a story " + cite("oconnor2020") + ". Each story's "
        "reconciled set is, code by code, what more than half of its coders chose; where the coders differed and "
        "an adjudicator was named, the stories in dispute went to them (with the coders' answers and memos) and "
        "their answer is the set."))  # fmt: skip
    return "\n".join(parts)


def codes_section(codes, coding: dict | None) -> str:
    if coding is None:
        return "<p>Skipped: codes are counted once a coding round is reconciled (see above).</p>"
    if codes is None or not len(codes):
        return "<p>No group had enough authors of coded stories to show.</p>"
    shown = codes.assign(**{"BH<0.05": ["✱" if p < 0.05 else "" for p in codes["p_adjusted"]]})
    tables = "".join(f"<h3>{e(q)}</h3>" + table(shown[shown["question"] == q].drop(columns="question"))
                     for q in dict.fromkeys(shown["question"]))  # fmt: skip
    caption = (
        "One panel per question. Marker: the share of a group's stories given the code, with its 95% "
        "cluster-bootstrap CI over authors; grey tick: the share over all that question's groups' stories "
        "pooled (a story whose author is in two groups counts in both). ✱ in the table: p adjusted &lt; 0.05."
    )
    return "\n".join([
        figure(codes_plot(codes), "share of each group's stories given each code, per question", caption),
        tables,
        methods("The unit is the author, since stories are nested in authors and one prolific author is not many "
                "independent observations. A group's share is the number of its authors' stories given the code "
                "(after reconciliation) over all their stories. The 95% CI is a percentile cluster bootstrap "
                + cite("davison1997") + ": the group's authors are resampled with replacement, each with all their "
                "stories. rest_share is the same share over the stories of every other author (those who gave "
                "no usable answer only when they are k or more), and diff "
                "is share − rest_share. p is a two-sided permutation test of diff in which group membership is "
                "shuffled across the question's authors; p_adjusted applies Benjamini-Hochberg "
                + cite("bh1995") + " within each question, over all its groups and codes."),
    ])  # fmt: skip


def language_section(distinctive, excerpts) -> str:
    keys = list(dict.fromkeys(zip(distinctive["question"], distinctive["group"], strict=True)))
    keys += [q for q in dict.fromkeys(zip(excerpts["question"], excerpts["group"], strict=True)) if q not in keys]
    if not keys:
        return "<p>No group had enough authors to compare its words with the rest.</p>"
    panels = [(key, distinctive[(distinctive["question"] == key[0]) & (distinctive["group"] == key[1])])
              for key in keys]  # fmt: skip
    panels = [(key, rows) for key, rows in panels if len(rows)]
    parts = []
    if panels:
        more = len(panels) - MAX_PANELS
        parts.append(figure(distinctive_plot(panels[:MAX_PANELS]), "most distinctive terms per group",
                            f"Each panel: the {TOP_TERMS} terms most distinctive of a group's stories against the "
                            "rest, by z-score." + (f" {more} more groups are not plotted; their terms and "
                            "excerpts are listed below." if more > 0 else "")))  # fmt: skip
    for question, group in keys:
        rows = distinctive[(distinctive["question"] == question) & (distinctive["group"] == group)]
        top = rows.sort_values("z", ascending=False).head(TOP_TERMS)
        terms = ", ".join(f"{e(t)} (z = {z:.2f})" for t, z in zip(top["term"], top["z"], strict=True))
        quoted = excerpts[(excerpts["question"] == question) & (excerpts["group"] == group)]
        items = "".join(f"<li><blockquote class='excerpt'>“{highlight(x, t)}”</blockquote></li>"
                        for t, x in zip(quoted["term"], quoted["excerpt"], strict=True))  # fmt: skip
        parts.append(f"<h3>{e(question)} = {e(group)}</h3>" + (f"<p>Top terms: {terms}.</p>" if terms else "")
                     + (f"<ul class='excerpts'>{items}</ul>" if items else ""))  # fmt: skip
    parts.append(methods(
        "Terms are words and two-word phrases (a phrase never spans a sentence end), lower-cased; terms made only of "
        "stop words are dropped. Per question, terms were counted in the stories of each group's authors and in the "
        "stories of every other author (k or more), and each term's log-odds ratio between the two was computed with "
        "an informative Dirichlet prior (the term's counts over all the question's stories), with its z-score, the "
        "log-odds ratio over its estimated standard deviation " + cite("monroe2008") + ": the prior shrinks rare "
        "terms, so a term seen twice does not top the list. Listed are the terms with the highest positive z that a "
        "minimum number of the group's authors used, so that one person's turn of phrase does not stand for the "
        "group. |z| above about 1.96 is unlikely under no difference, but these z-scores are not adjusted for the "
        "many terms compared: read them as description. Excerpts (up to two per term, from different authors) are "
        "the first sentence of a story that holds the term, cut to about 200 characters, so that readers can judge "
        "the term in context."))  # fmt: skip
    return "\n".join(parts)


def render(k: int, summary: dict, ratings, story_features, codes, distinctive, excerpts, model=None,
           coding: dict | None = None, suppressed: list[str] = ()) -> str:  # fmt: skip
    """The positionality page as one self-contained HTML document (the module says what is in it)."""
    has_model = model is not None and len(model) > 0
    keys = [key for key in SECTIONS if key != "model" or has_model]
    contents = "".join(f"<li><a href='#{key}'>{SECTIONS[key]}</a></li>" for key in keys)
    questions = ", ".join(e(q) for q in summary.get("questions", [])) or "none"
    body = {
        "not-shown": not_shown(k, summary, suppressed),
        "coding": coding_section(coding),
        "codes": codes_section(codes, coding),
        "language": language_section(distinctive, excerpts),
        "stories": (table(story_features) if len(story_features) else "<p>No group had enough authors.</p>")
        + methods("Each feature (words, pronouns, coded words: counts in one story, not rates) is computed "
                  "per story and averaged over all stories written by the group's authors, so a prolific author "
                  "weighs more. Descriptive only: no test."),
        "ratings": (f"<p>Per group of reviewers (an answer to one positionality question, only from people who "
                    f"allowed its use, and only groups of {e(k)} or more): Pearson r between the group's mean "
                    "rating of each story and whether the release policy accepts it on the other reviewers' "
                    "reviews (the group's own left out, so that its ratings cannot make the outcome they are "
                    "compared with; the minimum number of reviews is not applied to what is left); p adjusted "
                    "with Benjamini-Hochberg across groups.</p>"
                    + (figure(ratings_plot(ratings, k), "correlation per group",
                              "Pearson r per reviewer group; bars to the right: the group's ratings agree with "
                              "what the dataset accepted.") + table(ratings) if len(ratings)
                       else "<p>No group reviewed enough stories.</p>")
                    + methods("This is the alignment measure of NLPositionality " + cite("santy2023") + ", with "
                              "the group left out of the acceptance it is compared with. The units are stories "
                              "that both the group and other reviewers reviewed; p is the two-sided test of "
                              "Pearson's r, adjusted with Benjamini-Hochberg " + cite("bh1995") + " across all "
                              "groups of all questions.")),  # fmt: skip
        "model": ("<p>Win rate: the mean over the group's judges of each judge's share of judgments for the tuned "
                  "model (a tie counts half); 95% CI by bootstrap over judges; p: sign-flip test of each judge's "
                  "share against 0.5, adjusted with Benjamini-Hochberg across groups.</p>"
                  + (figure(model_plot(model), "tuned model's win rate per group with 95% confidence intervals",
                            "The tuned model's win rate in the blind comparison as each group judged it; the "
                            "line at 0.5: no preference.") + table(model) if has_model else "")
                  + methods("Judges are the units: each judge's judgments are first reduced to one share, so "
                            "that a judge who judged more pairs does not count more; the CI is a percentile "
                            "bootstrap over judges " + cite("davison1997") + "; Benjamini-Hochberg "
                            + cite("bh1995") + " across groups.")),  # fmt: skip
        "references": "<ol class='references'>" + "".join(f"<li id='ref-{key}'>{text}</li>"
                                                          for key, text in REFERENCES.items()) + "</ol>",
    }  # fmt: skip
    snapshot = e(summary.get("snapshot", "?"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Positionality in the stories ({snapshot})</title><style>{REPORT_CSS}</style></head><body>
<h1>Positionality in the stories</h1>
<p>Snapshot <code>{snapshot}</code>: {e(summary.get("stories", "?"))} stories by {e(summary.get("authors", "?"))}
authors; {e(summary.get("people_with_positionality", "?"))} people answered positionality questions that may be
used ({questions}). Groups have at least {e(k)} people.</p>
<nav class="contents" aria-label="Contents"><strong>Contents</strong><ol>{contents}</ol></nav>
{"".join(section(key, body[key]) for key in keys)}
</body></html>
"""
