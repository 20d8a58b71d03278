"""Rows rendered: console tables, paper tables, plots, gate and network reports."""
