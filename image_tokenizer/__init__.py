"""image_tokenizer"""
