"""c4_filters"""
