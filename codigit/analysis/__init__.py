"""Analysis of generations: per-text metrics, paired statistics, plots and the HTML report (reads files only)."""
