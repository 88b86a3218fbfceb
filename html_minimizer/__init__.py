"""html_minimizer"""
