module github.com/georep/georep

go 1.26.8
